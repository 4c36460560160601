"""The marker/context service: atomic operations on a user's JSON documents."""

from relove.users.service import (
    add_to_list,
    increment,
    remove_from_list,
    set_once,
    set_values,
    unset,
)

__all__ = ["add_to_list", "increment", "remove_from_list", "set_once", "set_values", "unset"]
