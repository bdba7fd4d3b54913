"""Shipped features. Every module in this package is imported by ``registry()``;
a module only needs ``@feature(...)``-decorated functions."""
