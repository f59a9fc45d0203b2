"""Every write the console makes goes through a function in this package."""
