KexecSimCommand.main()
