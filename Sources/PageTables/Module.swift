// PageTables module
