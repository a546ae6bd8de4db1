"""Types and statuses of the bookings app, each value with one line saying what it means."""

from django.db import models

from provisioning.choices import OperationState


class BookingItemType(models.TextChoices):
    PRIVATE_CLOUD = "PRIVATE_CLOUD", "Private cloud"  # a resource pool for servers, set up by hand
    CLOUD_SERVER = "CLOUD_SERVER", "Cloud server"  # a virtual server the customer administers
    MANAGED_SERVER = "MANAGED_SERVER", "Managed server"  # a server we administer for the customer
    MANAGED_WEBSPACE = "MANAGED_WEBSPACE", "Managed webspace"  # a webspace on a managed server
    DOMAIN_SETUP = "DOMAIN_SETUP", "Domain setup"  # a domain served by our DNS, web and mail servers


class HostingAssetType(models.TextChoices):
    MANAGED_SERVER = "MANAGED_SERVER", "Managed server"
    CLOUD_SERVER = "CLOUD_SERVER", "Cloud server"
    MANAGED_WEBSPACE = "MANAGED_WEBSPACE", "Managed webspace"  # parent: a MANAGED_SERVER
    UNIX_USER = "UNIX_USER", "Unix user"  # parent: a MANAGED_WEBSPACE
    EMAIL_ALIAS = "EMAIL_ALIAS", "E-mail alias"  # parent: a MANAGED_WEBSPACE
    DOMAIN_SETUP = "DOMAIN_SETUP", "Domain setup"  # parent: optionally the super-domain's setup
    DOMAIN_DNS_SETUP = "DOMAIN_DNS_SETUP", "Domain DNS setup"  # parent: DOMAIN_SETUP; to a webspace
    DOMAIN_HTTP_SETUP = "DOMAIN_HTTP_SETUP", "Domain HTTP setup"  # parent: DOMAIN_SETUP; to a unix user
    DOMAIN_SMTP_SETUP = "DOMAIN_SMTP_SETUP", "Domain SMTP setup"  # parent: DOMAIN_SETUP; to a webspace
    DOMAIN_MBOX_SETUP = "DOMAIN_MBOX_SETUP", "Domain mailbox setup"  # parent: DOMAIN_SETUP; to a webspace
    EMAIL_ADDRESS = "EMAIL_ADDRESS", "E-mail address"  # parent: a DOMAIN_MBOX_SETUP
    PGSQL_USER = "PGSQL_USER", "PostgreSQL user"  # parent: a MANAGED_WEBSPACE
    PGSQL_DATABASE = "PGSQL_DATABASE", "PostgreSQL database"  # parent: a PGSQL_USER (its owner)
    MARIADB_USER = "MARIADB_USER", "MariaDB user"  # parent: a MANAGED_WEBSPACE
    MARIADB_DATABASE = "MARIADB_DATABASE", "MariaDB database"  # parent: a MARIADB_USER (its owner)


class EventStatus(models.TextChoices):
    """The status of a BookingItemCreatedEvent: the state of the operation creating its assets."""

    PENDING = OperationState.PENDING.value, "Pending"  # the next step is queued
    RUNNING = OperationState.RUNNING.value, "Running"  # a worker creates assets right now
    RETRYING = OperationState.RETRYING.value, "Retrying"  # a step runs again later (DNS busy, ...)
    WAITING = OperationState.WAITING.value, "Waiting"  # somebody must act: see the instructions
    COMPENSATING = OperationState.COMPENSATING.value, "Undoing"  # removing what was created
    SUCCEEDED = OperationState.SUCCEEDED.value, "Succeeded"  # assets exist (the event is deleted)
    FAILED = OperationState.FAILED.value, "Failed"  # a hostmaster may retry it after fixing the cause
    CANCELLED = OperationState.CANCELLED.value, "Cancelled"  # a hostmaster or the customer cancelled it
    TIMED_OUT = OperationState.TIMED_OUT.value, "Timed out"  # nobody acted in time


ACTIVE_EVENT_STATUSES = frozenset(
    {
        EventStatus.PENDING,
        EventStatus.RUNNING,
        EventStatus.RETRYING,
        EventStatus.WAITING,
        EventStatus.COMPENSATING,
    }
)
TERMINAL_EVENT_STATUSES = frozenset(
    {EventStatus.SUCCEEDED, EventStatus.FAILED, EventStatus.CANCELLED, EventStatus.TIMED_OUT}
)


class Actor(models.TextChoices):
    """Who must act for a waiting event."""

    NOBODY = "", "Nobody"  # the saga goes on by itself
    CUSTOMER = "customer", "Customer"  # e.g. add the DNS TXT record
    HOSTMASTER = "hostmaster", "Hostmaster"  # e.g. assign a target server, finish a manual setup


# Signals the asset-creation sagas wait for, and who sends them.
class SignalName(models.TextChoices):
    RECORD_ADDED = "record_added", "DNS record added"  # the customer added the TXT record: check now
    SERVER_ASSIGNED = "server_assigned", "Target server assigned"  # payload {"server": identifier}
    SETUP_DONE = "setup_done", "Manual setup done"  # payload {"identifier": ...} where an asset follows
    SERVER_LAUNCHED = "server_launched", "Server launch ended"  # sent by the launch's status listener


SIGNAL_ACTORS = {
    SignalName.RECORD_ADDED: Actor.CUSTOMER,
    SignalName.SERVER_ASSIGNED: Actor.HOSTMASTER,
    SignalName.SETUP_DONE: Actor.HOSTMASTER,
    SignalName.SERVER_LAUNCHED: Actor.NOBODY,
}
