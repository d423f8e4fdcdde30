// GuestCode module
