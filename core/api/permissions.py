"""Who may call what, beyond DRF's own permission classes."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission


class ReadOpenWriteStaff(BasePermission):
    """Anyone may read (GET, HEAD, OPTIONS); changing anything needs a staff user."""

    message = "This change needs a staff user."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
