"""Self-supervised methods: importing this package registers every method."""

from labelless.methods import byol, simclr  # noqa: F401  (registration)
from labelless.methods.base import METHODS, Method, create_method, list_methods, register_method

__all__ = ["METHODS", "Method", "create_method", "list_methods", "register_method"]
