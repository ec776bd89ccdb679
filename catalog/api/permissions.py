"""Who may call the API: anyone reads the storefront; writes need staff plus a model permission."""

from rest_framework.permissions import SAFE_METHODS, BasePermission, DjangoModelPermissions


class StaffModelPermissions(DjangoModelPermissions):
    """Staff users holding the Django permission of the view's model for the HTTP method.

    Unlike DRF's ``DjangoModelPermissions``, reading needs the ``view`` permission as well: job,
    model-version and training endpoints expose internals only staff with that right may see.
    Being staff alone is never enough, so the admin's permission screens govern the API too.
    """

    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": [],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        return super().has_permission(request, view)


class StorefrontPermissions(StaffModelPermissions):
    """Anyone (also anonymous) reads; writes need staff plus the model permission."""

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().has_permission(request, view)


def staff_with(*perms: str) -> type[BasePermission]:
    """A permission class for actions whose right is not the view model's own (e.g. "classify").

    Args:
        *perms: Django permission names (``"app_label.codename"``), all required.
    """

    class StaffWith(BasePermission):
        message = f"Staff with the permission(s) {', '.join(perms)} may do this."

        def has_permission(self, request, view) -> bool:
            user = request.user
            return bool(
                user and user.is_authenticated and user.is_staff and user.has_perms(perms)
            )

    StaffWith.__name__ = f"StaffWith_{'_'.join(p.replace('.', '_') for p in perms)}"
    return StaffWith
