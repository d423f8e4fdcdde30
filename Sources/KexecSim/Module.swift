// KexecSim module
