#!/bin/busybox sh
# /init of the payload initramfs: the kexec'd kernel says it reached user space, then powers off.
/bin/busybox mount -t proc proc /proc
echo "KT-MARK second-kernel-userspace $(/bin/busybox cat /proc/version)"
/bin/busybox poweroff -f
