"""R4 Subscriptions (rest-hook): matching committed writes against criteria and delivering notifications."""

from __future__ import annotations


def install(repository):
    from .delivery import Notifier

    notifier = Notifier(repository)
    repository.add_write_check(notifier.check)
    repository.add_commit_listener(notifier.on_commit)
    return notifier
