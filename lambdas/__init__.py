"""Thin Lambda handlers: parse the event, call one ``workflow`` function, return."""
