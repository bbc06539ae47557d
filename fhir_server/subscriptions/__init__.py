"""R4 Subscriptions (rest-hook): matching committed writes against criteria and delivering notifications.

:func:`install` registers the Subscription write check and the commit listener on a repository;
:func:`notifier` returns the one installed (for the access layer's ``may_see`` and for shutdown).
"""

from __future__ import annotations

import weakref

_NOTIFIERS: "weakref.WeakKeyDictionary[object, object]" = weakref.WeakKeyDictionary()


def install(repository):
    from .delivery import Notifier

    notifier = Notifier(repository)
    repository.add_write_check(notifier.check)
    repository.add_precommit_hook(notifier.activate)
    repository.add_commit_listener(notifier.on_commit)
    repository.add_close_hook(notifier.close)
    _NOTIFIERS[repository] = notifier
    return notifier


def notifier(repository):
    return _NOTIFIERS.get(repository)
