"""The browser console's views, one module per page family."""
