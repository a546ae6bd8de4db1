"""What waits for the hostmasters, for the admin's first page (templates/admin/index.html)."""

from django import template

from bookings.selectors import events_waiting_for_hostmasters
from provisioning.selectors import failed_operations

register = template.Library()

SHOWN = 25


@register.simple_tag
def hostmaster_queue() -> dict:
    return {
        "events": list(events_waiting_for_hostmasters()[:SHOWN]),
        "failed": list(failed_operations()[:SHOWN]),
    }
