// Kimage module
