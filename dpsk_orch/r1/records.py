"""Typed records the client hands to the rest of the code, free of RuckusONE's field spellings."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pool:
    """A DPSK pool (RuckusONE `dpskServices`)."""

    id: str
    name: str
    identity_group_id: str | None = None
    device_count_limit: int | None = None


@dataclass(frozen=True)
class PassphraseFields:
    """What dpsk-orch copies from a source passphrase to its site-wide twin."""

    passphrase: str = field(repr=False)
    username: str
    vlan_id: int | None = None
    number_of_devices: int | None = None
    expiration_date: str | None = None
    email: str | None = None
    phone_number: str | None = None
    mac: str | None = None


@dataclass(frozen=True)
class Passphrase:
    """One passphrase row of a pool. `passphrase` is the secret: it never leaves memory."""

    id: str
    pool_id: str
    passphrase: str = field(repr=False)
    username: str = ""
    vlan_id: int | None = None
    number_of_devices: int | None = None
    expiration_date: str | None = None
    email: str | None = None
    phone_number: str | None = None
    mac: str | None = None
    is_revoked: bool = False
    identity_id: str | None = None
    identity_group_id: str | None = None

    def fields(self) -> PassphraseFields:
        """The copyable part of this row."""
        return PassphraseFields(
            passphrase=self.passphrase,
            username=self.username,
            vlan_id=self.vlan_id,
            number_of_devices=self.number_of_devices,
            expiration_date=self.expiration_date,
            email=self.email,
            phone_number=self.phone_number,
            mac=self.mac,
        )


@dataclass(frozen=True)
class Identity:
    """An identity (formerly persona); RuckusONE creates one per passphrase."""

    id: str
    group_id: str
    name: str
    display_name: str | None = None
    description: str | None = None
    passphrase_id: str | None = None


@dataclass(frozen=True)
class ActivityResult:
    """The terminal state of an asynchronous write."""

    request_id: str
    succeeded: bool
    message: str = ""


@dataclass(frozen=True)
class Network:
    """A Wi-Fi network at a venue, with the DPSK pools it serves."""

    id: str
    pool_ids: tuple[str, ...] = ()
