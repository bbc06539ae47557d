"""placeholder"""


class Notifier:
    def __init__(self, repository):
        self.repository = repository

    def check(self, session, resource_type, resource, previous):
        return []

    def on_commit(self, records):
        pass
