"""A runtime: the three ports opened from settings, plus the event codec."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from reelstream.config import Settings
from reelstream.events.codec import EventCodec
from reelstream.events.model import Event
from reelstream.events.topics import TOPICS, topic_for
from reelstream.stores.factory import open_log, open_objects, open_state
from reelstream.stores.namespaced import NamespacedLog
from reelstream.stores.ports import EventLog, ObjectStore, StateStore


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def codec(self) -> EventCodec:
        if self.settings.schema_registry_url:
            from reelstream.events.schema_registry import ConfluentSchemaRegistry

            return EventCodec(schema_registry=ConfluentSchemaRegistry(self.settings.schema_registry_url),
                              namespace=self.settings.namespace)
        return EventCodec()

    @cached_property
    def log(self) -> EventLog:
        log = open_log(self.settings.log_url)
        if self.settings.namespace:
            log = NamespacedLog(log, self.settings.namespace)
        log.ensure_topics(TOPICS)
        return log

    @cached_property
    def state(self) -> StateStore:
        from reelstream.processors.registry import all_processors

        state = open_state(self.settings.state_url)
        state.ensure_views(spec for p in all_processors() for spec in p.views)
        return state

    @cached_property
    def objects(self) -> ObjectStore:
        return open_objects(self.settings.objects_url, self.settings)

    def publish(self, event: Event, flush: bool = True) -> None:
        """Validate, encode and append ``event`` to its topic (SchemaViolation before any write)."""
        topic = topic_for(event.type)
        value = self.codec.encode(event, topic.name)
        self.log.append(topic.name, topic.key_of(event), value)
        if flush:
            self.log.flush()

    def close(self) -> None:
        for name in ("log", "state"):
            if name in self.__dict__:
                getattr(self, name).close()
