print("kexec-sim")
