#!/bin/busybox sh
# /init of the first kernel's initramfs (kernel-truth). Prints KT-* markers on the console and,
# between them, the output of each kexec step and the kernel log (dmesg -c) that step produced.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
# From here on the kernel log reaches the console only through the dmesg dumps below.
dmesg -n 1
. /kt.conf
# The same dynamic-debug switches as on the command line (in case the boot parameter was refused).
for f in kernel/kexec_file.c kernel/kexec_core.c kernel/crash_core.c \
         arch/x86/kernel/kexec-bzimage64.c arch/x86/kernel/crash.c arch/x86/kernel/machine_kexec_64.c; do
  echo "file $f +p" >/sys/kernel/debug/dynamic_debug/control 2>/dev/null
done
echo "KT-MARK init-start"
dump() { echo "KT-BEGIN dmesg-$1"; dmesg -c; echo "KT-END dmesg-$1"; }
show() { echo "KT-BEGIN $1"; cat "$2" 2>&1; echo "KT-END $1"; }
run() {
  name="$1"; shift
  echo "KT-BEGIN $name"
  echo "KT-CMD $*"
  "$@" 2>&1
  echo "KT-RC $?"
  echo "KT-END $name"
  dump "$name"
}
dump boot
show iomem-boot /proc/iomem
show crash-size /sys/kernel/kexec_crash_size
# EFI boots: how many entries the runtime map has (efi.memmap.nr_map, one folder each) and the
# firmware's descriptor size (boot_params.efi_info.efi_memdesc_size, at 0x1c8 of the boot_params
# the first kernel got): bzImage64_load sizes boot_params with efi_get_runtime_map_size = nr × size.
if [ -d /sys/firmware/efi/runtime-map ]; then
  echo "KT-BEGIN efi-runtime-map"
  ls /sys/firmware/efi/runtime-map | wc -l
  od -A n -t u4 -j 456 -N 4 /sys/kernel/boot_params/data
  echo "KT-END efi-runtime-map"
fi
crash_size=$(cat /sys/kernel/kexec_crash_size 2>/dev/null || echo 0)

run file-normal kexec -s -l /payload/vmlinuz --initrd=/payload/initrd.cpio.gz --append="$KT_APPEND"
show kexec-loaded /sys/kernel/kexec_loaded
if [ "$KT_ACTION" = exec ]; then
  echo "KT-MARK exec"
  kexec -e 2>&1
  echo "KT-MARK exec-returned rc=$?"
  dump exec
fi
run file-unload kexec -s -u
if [ "$crash_size" != 0 ]; then
  run file-crash kexec -s -p /payload/vmlinuz --initrd=/payload/initrd.cpio.gz --append="$KT_CRASH_APPEND"
  show kexec-crash-loaded /sys/kernel/kexec_crash_loaded
  show iomem-file-crash /proc/iomem
  run file-crash-unload kexec -s -p -u
fi
if [ "$KT_FILE_DEBUG" = 1 ]; then
  # The same kexec_file_load calls with KEXEC_FILE_DEBUG set, so that v6.8+ kernels print placement.
  run file-normal-debug kt-file-load /payload/vmlinuz /payload/initrd.cpio.gz "$KT_APPEND"
  run file-normal-debug-unload kt-file-load -u
  if [ "$crash_size" != 0 ]; then
    run file-crash-debug kt-file-load -p /payload/vmlinuz /payload/initrd.cpio.gz "$KT_CRASH_APPEND"
    run file-crash-debug-unload kt-file-load -p -u
  fi
fi
run load-normal kexec -c -d -l /payload/vmlinuz --initrd=/payload/initrd.cpio.gz --append="$KT_APPEND"
run load-unload kexec -c -u
if [ "$crash_size" != 0 ]; then
  run load-crash kexec -c -d -p /payload/vmlinuz --initrd=/payload/initrd.cpio.gz --append="$KT_CRASH_APPEND"
  run load-crash-unload kexec -c -p -u
fi
show iomem-end /proc/iomem
show crash-size-end /sys/kernel/kexec_crash_size
dump end
echo "KT-MARK done"
sync
poweroff -f
