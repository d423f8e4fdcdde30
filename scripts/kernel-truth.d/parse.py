#!/usr/bin/env python3
"""kernel-truth log parser: META LOG OUT.

META holds NUL-separated key/value pairs written by scripts/kernel-truth; LOG is the serial console
of one QEMU boot whose /init (init.sh) framed each step with KT-BEGIN/KT-END markers. Writes one
small JSON case to OUT: the boot facts (e820, RAMDISK, crashkernel), and per kexec load the segments
and placement lines the kernel printed, kexec-tools' own -d segment list, plus the raw lines kept
for provenance (only e820/crashkernel/kexec lines, never the full log)."""
import hashlib, json, os, re, sys

def bzimage_header(path):
    """The setup header fields kexec_file_load's bzImage64_load reads (Documentation/arch/x86/boot.rst):
    setup_sects (0x1f1; 0 means 4), kernel_alignment (0x230), pref_address (0x258), init_size (0x260)."""
    import struct
    with open(path, 'rb') as f:
        b = f.read(0x270)
    sects = b[0x1f1] or 4
    return {'setup_sects': sects, 'protected_mode_offset': '0x%x' % ((sects + 1) * 512),
            'kernel_alignment': '0x%x' % struct.unpack_from('<I', b, 0x230)[0],
            'pref_address': '0x%x' % struct.unpack_from('<Q', b, 0x258)[0],
            'init_size': '0x%x' % struct.unpack_from('<I', b, 0x260)[0]}

def sha(path):
    d = hashlib.sha256()
    with open(path, 'rb') as f:
        for b in iter(lambda: f.read(1 << 20), b''):
            d.update(b)
    return d.hexdigest()

def add_header(json_path, image_path):
    """--add-header JSON VMLINUZ: adds payload.kernel.header to a case recorded before the harness
    wrote it, from the same image (its size and sha256 must match the recorded ones)."""
    d = json.load(open(json_path))
    k = d['payload']['kernel']
    if os.path.getsize(image_path) != k['size'] or sha(image_path) != k['sha256']:
        sys.exit('kernel-truth: %s: %s is not the recorded image (size/sha256 differ)' % (json_path, image_path))
    k['header'] = bzimage_header(image_path)
    with open(json_path + '.tmp', 'w') as f:
        json.dump(d, f, indent=1)
        f.write('\n')
    os.replace(json_path + '.tmp', json_path)

if sys.argv[1] == '--add-header':
    add_header(sys.argv[2], sys.argv[3])
    sys.exit(0)
meta_path, log_path, out_path = sys.argv[1:4]
raw = open(meta_path, 'rb').read().split(b'\0')
meta = {raw[i].decode(): raw[i + 1].decode() for i in range(0, len(raw) - 1, 2)}

text = open(log_path, 'rb').read().decode('utf-8', 'replace')
text = re.sub(r'\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x1bc', '', text)
all_lines = [l.rstrip('\r').rstrip() for l in text.replace('\r\n', '\n').split('\n')]

# ---- sections
sections, console_pre, after = {}, [], []
cur, seen_init = None, False
for l in all_lines:
    m = re.match(r'^KT-BEGIN (\S+)$', l)
    if m:
        cur = m.group(1); sections[cur] = []; seen_init = True; continue
    m = re.match(r'^KT-END (\S+)$', l)
    if m and cur == m.group(1):
        cur = None; continue
    if cur is not None:
        sections[cur].append(l)
    elif not seen_init:
        console_pre.append(l)
    else:
        after.append(l)

TS = re.compile(r'^\[\s*\d+\.\d+\]\s?')
def msg(l): return TS.sub('', l)
HEX = r'(0x[0-9a-fA-F]+)'
def h(x): return None if x is None else '0x%x' % int(x, 16)

boot = sections.get('dmesg-boot') or console_pre
BOOT_KEEP = re.compile(r'^(Linux version|Command line:|Kernel command line:|BIOS-e820:|user: \[mem|user-defined physical RAM map|'
                       r'e820: |RAMDISK:|Memory: |efi: |DMI: |Reserving .*crashkernel|crashkernel|.*[Cc]rash ?kernel)|'
                       r'crashkernel|kexec')
boot_lines = [l for l in boot if BOOT_KEEP.search(msg(l))]
kver = next((msg(l) for l in boot if msg(l).startswith('Linux version')), None)
if kver is None:
    kver = next((msg(l) for l in all_lines if 'Linux version' in l), None)

def ranges(prefix):
    r = []
    for l in boot:
        m = re.match(prefix + r'\s*\[mem ' + HEX + '-' + HEX + r'\]\s*(.*)$', msg(l))
        if m:
            s, e = int(m.group(1), 16), int(m.group(2), 16)
            r.append({'start': h(m.group(1)), 'end': h(m.group(2)), 'size': '0x%x' % (e - s + 1), 'type': m.group(3)})
    return r

ramdisk = None
for l in boot:
    m = re.match(r'RAMDISK: \[mem ' + HEX + '-' + HEX + r'\]', msg(l))
    if m:
        ramdisk = {'line': msg(l), 'start': h(m.group(1)), 'end': h(m.group(2))}

MB = 1 << 20
crash = []
for l in boot:
    t = msg(l)
    m = re.search(r'Reserving (\d+)MB of (low )?memory at (\d+)MB for crashkernel \((System RAM|low RAM limit): (\d+)MB\)', t)
    if m:
        start = int(m.group(3)) * MB
        crash.append({'line': t, 'kind': 'low' if m.group(2) else 'main', 'start': '0x%x' % start,
                      'size': '0x%x' % (int(m.group(1)) * MB), 'end': '0x%x' % (start + int(m.group(1)) * MB - 1),
                      ('system_ram_mb' if m.group(4) == 'System RAM' else 'low_ram_limit_mb'): int(m.group(5))})
        continue
    m = re.search(r'crashkernel (low memory )?reserved: ' + HEX + r' - ' + HEX + r' \((\d+) MB\)', t)
    if m:
        crash.append({'line': t, 'kind': 'low' if m.group(1) else 'main', 'start': h(m.group(2)),
                      'end': '0x%x' % (int(m.group(3), 16) - 1), 'size': '0x%x' % (int(m.group(4)) * MB)})
        continue
    if re.search(r'crashkernel', t, re.I) and not t.startswith(('Command line', 'Kernel command line')):
        crash.append({'line': t, 'kind': 'other'})

def iomem_crash(lines):
    r = []
    for l in lines or []:
        m = re.match(r'^\s*([0-9a-f]+)-([0-9a-f]+) : Crash kernel', l)
        if m:
            r.append({'start': h('0x' + m.group(1)), 'end': h('0x' + m.group(2))})
    return r

# Per-symbol relocation chatter (kernel: "kexec: Symbol: ...", kexec-tools -d: "sym: ...", "R_X86_64_64")
# says nothing about placement: counted, not kept.
NOISE = re.compile(r'kexec: Symbol: |kexec: Applying relocate section|^\s*sym: |^R_X86_64')

def step(name):
    out = sections.get(name)
    if out is None:
        return None
    rc = next((int(l.split()[1]) for l in out if re.match(r'^KT-RC -?\d+$', l)), None)
    cmd = next((l[7:] for l in out if l.startswith('KT-CMD ')), None)
    output = [l for l in out if not l.startswith(('KT-RC ', 'KT-CMD '))]
    kern = sections.get('dmesg-' + name, [])
    r = {'command': cmd, 'rc': rc}
    segs, placed, final_cmdline, entry, next_e820 = [], [], None, None, []
    for l in kern:
        t = msg(l)
        # 6.1/5.10 (pr_debug): "Loading segment 0: buf=…"; 6.12 (kexec_dprintk): "segment[0]: buf=…"
        m = re.search(r'(?:Loading segment (\d+)|segment\[(\d+)\]): buf=\S+ bufsz=' + HEX + ' mem=' + HEX + ' memsz=' + HEX, t)
        if m:
            segs.append({'index': int(m.group(1) or m.group(2)), 'bufsz': h(m.group(3)), 'mem': h(m.group(4)), 'memsz': h(m.group(5))})
            continue
        m = re.search(r'kexec_file_load: type:(\d+), start:' + HEX + ' head:' + HEX + ' flags:' + HEX, t)
        if m:
            entry = {'type': int(m.group(1)), 'start': h(m.group(2)), 'head': h(m.group(3)), 'flags': h(m.group(4))}
            continue
        m = re.search(r'kexec-bzImage64: ([0-9a-f]{16})-([0-9a-f]{16}) \((\d+)\)$', t)
        if m:
            next_e820.append({'start': h('0x' + m.group(1)), 'end': h('0x' + m.group(2)), 'type': int(m.group(3))})
            continue
        m = re.search(r'Loaded (.+?) at ' + HEX + r'(?: bufsz=' + HEX + r' memsz=' + HEX + ')?', t)
        if m:
            p = {'what': m.group(1), 'mem': h(m.group(2))}
            if m.group(3):
                p.update(bufsz=h(m.group(3)), memsz=h(m.group(4)))
            placed.append(p)
            continue
        m = re.search(r'Final command line is: (.*)$', t)
        if m:
            final_cmdline = m.group(1)
    if name.startswith('file-') and not name.endswith('unload'):
        r['kernel_segments'] = segs
        r['kernel_placements'] = placed
        if final_cmdline is not None:
            r['final_command_line'] = final_cmdline
        if entry is not None:
            r['kernel_load_summary'] = entry
        if next_e820:
            r['next_kernel_e820'] = next_e820
    # kexec-tools -d: "segment[0].buf   = 0x..." etc.
    ts = {}
    for l in output:
        m = re.match(r'^segment\[(\d+)\]\.(buf|bufsz|mem|memsz)\s*=\s*' + HEX, l.strip())
        if m:
            ts.setdefault(int(m.group(1)), {'index': int(m.group(1))})[m.group(2)] = h(m.group(3))
    for l in output:
        m = re.match(r'^kexec_load: entry = ' + HEX + ' flags = ' + HEX, l.strip())
        if m:
            r['kexec_tools_entry'], r['kexec_tools_flags'] = h(m.group(1)), h(m.group(2))
    if ts:
        r['kexec_tools_segments'] = [dict((k, v) for k, v in s.items() if k != 'buf') for _, s in sorted(ts.items())]
    kept = [l for l in output if not NOISE.search(l)]
    r['kexec_output'] = kept[:200]
    r['kexec_output_dropped'] = len(output) - min(len(kept), 200)
    kept = [l for l in kern if not NOISE.search(l)]
    r['lines'] = kept[:200]
    r['lines_dropped'] = len(kern) - min(len(kept), 200)
    return r

def efi_runtime_map(lines):
    """EFI boots: the runtime map's entry count and descriptor size, and their product (the size
    bzImage64_load adds to boot_params for the EFI memory map); None on a BIOS boot."""
    nums = [int(w) for l in lines or [] for w in l.split() if w.isdigit()]
    if len(nums) < 2:
        return None
    return {'entries': nums[0], 'desc_size': nums[1], 'size': '0x%x' % (nums[0] * nums[1])}

exec_idx = next((i for i, l in enumerate(all_lines) if l.startswith('KT-MARK exec')), None)
result = {
    'schema': 'kexec-sim kernel-truth 1',
    'series': meta['series'],
    'shape': meta['shape'],
    'kernel_version': kver,
    'kernel_package': meta['kernel_package'],
    'kernel_release': meta['kernel_release'],
    'recorded': meta['recorded'],
    'qemu': {'machine': meta['machine'], 'memory': meta['memory'], 'firmware': meta['firmware'],
             'append': meta['append'], 'argv': meta['qemu_argv'].strip(), 'version': meta['qemu_version'],
             'exit_code': int(meta['qemu_rc']), 'seconds': int(meta['qemu_seconds'])},
    'crashkernel_param': None if meta['crashkernel'] == '-' else meta['crashkernel'],
    'extra_append': None if meta['extra_append'] == '-' else meta['extra_append'],
    'action': meta['action'],
    'tools': {'kexec_tools': meta['kexec_tools_version'], 'kexec_tools_package': meta['kexec_tools_package'],
              'busybox': meta['busybox_package'], 'ovmf': meta['ovmf_package'] if meta['firmware'] == 'ovmf' else None},
    'payload': {
        'kernel': {'file': 'vmlinuz (the same ' + meta['kernel_package'] + ' image)', 'size': os.path.getsize(meta['payload_kernel']),
                   'sha256': sha(meta['payload_kernel']), 'header': bzimage_header(meta['payload_kernel'])},
        'initrd': {'file': 'busybox + /init that prints a marker and powers off', 'size': os.path.getsize(meta['payload_initrd']),
                   'sha256': sha(meta['payload_initrd'])},
        'append': meta['payload_append'], 'crash_append': meta['crash_payload_append']},
    'init_completed': any(l == 'KT-MARK done' for l in all_lines),
    'e820': {'lines': [msg(l) for l in boot if re.match(r'(BIOS-e820|user): \[mem', msg(l))],
             'bios': ranges('BIOS-e820:'), 'user': ranges('user:')},
    'ramdisk': ramdisk,
    'crashkernel': {'reservations': crash,
                    'iomem': iomem_crash(sections.get('iomem-boot')),
                    'kexec_crash_size': (sections.get('crash-size') or [None])[0],
                    'kexec_crash_size_end': (sections.get('crash-size-end') or [None])[0]},
    'iomem_boot': sections.get('iomem-boot'),
    'efi_runtime_map': efi_runtime_map(sections.get('efi-runtime-map')),
    'loads': {},
    'lines': boot_lines,
}
for s in ('file-normal', 'file-unload', 'file-crash', 'file-crash-unload',
          'file-normal-debug', 'file-normal-debug-unload', 'file-crash-debug', 'file-crash-debug-unload', 'load-normal', 'load-unload', 'load-crash', 'load-crash-unload'):
    st = step(s)
    if st is not None:
        if s.endswith('unload'):
            st = {'command': st['command'], 'rc': st['rc'], 'kexec_output': st['kexec_output'], 'lines': st['lines']}
        result['loads'][s] = st
if sections.get('kexec-loaded'):
    result['loads']['file-normal']['kexec_loaded'] = sections['kexec-loaded'][0]
if sections.get('kexec-crash-loaded') and 'file-crash' in result['loads']:
    result['loads']['file-crash']['kexec_crash_loaded'] = sections['kexec-crash-loaded'][0]
    if sections.get('iomem-file-crash') != sections.get('iomem-boot'):
        result['loads']['file-crash']['iomem'] = sections.get('iomem-file-crash')
if sections.get('iomem-end') != sections.get('iomem-boot'):
    result['iomem_end'] = sections.get('iomem-end')
if meta['action'] == 'exec':
    tail = all_lines[exec_idx + 1:] if exec_idx is not None else []
    banner = next((l for l in tail if 'Linux version' in l), None)
    result['exec'] = {
        'second_kernel_started': banner is not None,
        'second_kernel_banner': msg(banner) if banner else None,
        'second_kernel_userspace': any(l.startswith('KT-MARK second-kernel-userspace') for l in tail),
        'lines': [msg(l) for l in tail if re.search(r'KT-MARK|Linux version|Command line:|kexec|RAMDISK:|BIOS-e820:|Kernel panic', l)][:80],
    }
if not result['init_completed'] and not result.get('exec', {}).get('second_kernel_userspace'):
    # Keep the tail of the console for diagnosis when the case did not run to the end.
    result['console_tail'] = [l for l in all_lines if l.strip()][-40:]

with open(out_path + '.tmp', 'w') as f:
    json.dump(result, f, indent=1)
    f.write('\n')
os.replace(out_path + '.tmp', out_path)
ls = result['loads']
summary = ', '.join('%s rc=%s segs=%d' % (k, v.get('rc'), len(v.get('kernel_segments', v.get('kexec_tools_segments', []))))
                    for k, v in ls.items() if not k.endswith('unload'))
print('kernel-truth: wrote %s (%s; init %s)' % (out_path, summary or 'no loads', 'completed' if result['init_completed'] else 'INCOMPLETE'), file=sys.stderr)
