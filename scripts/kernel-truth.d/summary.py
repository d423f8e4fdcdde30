#!/usr/bin/env python3
"""kernel-truth summary: DIR [SERIES...] -> a markdown table per series of the recorded cases
(crashkernel reservation and, per load, each segment as mem+memsz)."""
import glob, json, os, sys

base = sys.argv[1]
series = sys.argv[2:] or sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))

def segs(load, key):
    if not load:
        return '—'
    s = load.get(key) or []
    if not s:
        return 'rc=%s, none printed' % load.get('rc')
    return ' '.join('%s+%s' % (x['mem'], x['memsz']) for x in s) + ('' if load.get('rc') == 0 else ' (rc=%s)' % load.get('rc'))

for se in series:
    files = sorted(glob.glob(os.path.join(base, se, '*.json')))
    if not files:
        continue
    print('### %s\n' % se)
    print('| shape | crashkernel (iomem) | file normal | file crash | kexec_load normal (kexec-tools) |')
    print('| --- | --- | --- | --- | --- |')
    for f in files:
        d = json.load(open(f))
        L = d['loads']
        fn, fc = L.get('file-normal-debug') or L.get('file-normal'), L.get('file-crash-debug') or L.get('file-crash')
        ck = ', '.join('%s-%s' % (r['start'], r['end']) for r in d['crashkernel']['iomem']) or '—'
        if d['crashkernel_param']:
            more = [w for w in (d.get('extra_append') or '').split() if w.startswith('crashkernel=')]
            ck = '`%s`: %s' % (' '.join([d['crashkernel_param']] + more), ck)
        extra = []
        if not d['init_completed'] and 'exec' not in d:
            extra.append('INCOMPLETE (qemu rc %s)' % d['qemu']['exit_code'])
        if 'exec' in d:
            extra.append('second_kernel_started=%s' % str(d['exec']['second_kernel_started']).lower())
        name = d['shape'] + (' — ' + '; '.join(extra) if extra else '')
        print('| %s | %s | %s | %s | %s |' % (name, ck, segs(fn, 'kernel_segments'), segs(fc, 'kernel_segments'),
                                           segs(L.get('load-normal'), 'kexec_tools_segments')))
    print()
