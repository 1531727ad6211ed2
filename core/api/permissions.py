"""Who may change the registry through the API: staff holding the Django model permission.

The admin checks the same permissions (``has_perm``), so one grant (for example membership
of the "ML engineers" group) opens both doors, and a staff account without it can look but
not train, activate, sync, set a challenger or give feedback.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

# The permissions each write needs, named once for the API, the admin and the group.
TRAIN = "training.train"
CHANGE_MODEL = "classifier.change_mlmodel"  # activate a version, set a challenger, sync the registry
CHANGE_PREDICTION = "classifier.change_prediction"  # record the true species (feedback)


def _staff_holding(user, permission: str) -> bool:
    return bool(user and user.is_authenticated and user.is_staff and user.has_perm(permission))


def staff_with_permission(permission: str) -> type[BasePermission]:
    """A DRF permission class: an authenticated staff user holding ``permission`` (``app.codename``)."""

    class StaffWithPermission(BasePermission):
        message = f"You need the {permission!r} permission (the ML engineers group has it)."

        def has_permission(self, request, view) -> bool:
            return _staff_holding(request.user, permission)

    StaffWithPermission.__name__ = f"StaffWith_{permission.replace('.', '_')}"
    return StaffWithPermission


class ReadOpenWriteStaff(BasePermission):
    """Anyone may read (GET, HEAD, OPTIONS); a change needs a staff user holding ``change_mlmodel``."""

    message = f"This change needs a staff user with the {CHANGE_MODEL!r} permission (the ML engineers group has it)."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return _staff_holding(request.user, CHANGE_MODEL)
