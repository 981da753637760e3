"""The MQTT transport: the FIWARE agents' topics on a real broker (Mosquitto or any MQTT 3.1.1).

The client runs in paho's own network thread, subscribes with QoS 1 to::

    /+/+/attrs    /+/+/attrs/+    /+/+/cmdexe         (/{apikey}/{device_id}/...)
    /json/+/+/attrs ...            /ul/+/+/attrs ...   (the agents' prefixed forms)

and hands each message to the pipeline. Its session is persistent (a fixed client id,
``clean_session`` false), so the broker keeps what devices publish while CityVerse is
down and delivers it on reconnection; paho reconnects with a growing delay (1 s to
30 s). A message is acknowledged when the pipeline has it, and written within the
batching window; while more than ``MAX_BACKLOG`` messages wait to be written the agent
reads no more, so that the broker holds a flood rather than the agent's memory;
stopping writes everything received before disconnecting. A message the broker
delivers twice does not add history twice (see pipeline.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.matcher import MQTTMatcher

from cityverse.ingest.iot.pipeline import JSON, UL, Message
from cityverse.ingest.iot.stats import Stats

log = logging.getLogger("cityverse.iot")

TOPICS = [
    prefix + suffix
    for prefix in ("", "/json", "/ul")
    for suffix in ("/+/+/attrs", "/+/+/attrs/+", "/+/+/cmdexe")
]
"""What the agent subscribes to, each with QoS 1."""

_FORMATS = {"json": JSON, "ul": UL}

MAX_BACKLOG = 20_000
"""Messages received and not yet written above which the agent stops reading from the
broker until the store catches up: the broker keeps the rest (the session is
persistent), and a flood costs neither memory nor the writer's time."""


class _TopicCallbacks(MQTTMatcher):
    """paho's table of per-topic callbacks, looked up without a cycle when empty."""

    def iter_match(self, topic: str) -> Iterator[Any]:
        if not self._root._children:
            return iter(())
        return super().iter_match(topic)


def parse_topic(topic: str) -> tuple[str, str, str, str | None, str | None] | None:
    """(apikey, device_id, kind, attribute, format) of a device topic, or None."""
    levels = topic.split("/")
    if len(levels) < 4 or levels[0] != "":
        return None
    fmt = None
    if levels[1] in _FORMATS and len(levels) >= 5 and levels[4] in ("attrs", "cmdexe"):
        fmt = _FORMATS[levels[1]]
        levels = levels[1:]
    apikey, device_id, kind = levels[1], levels[2], levels[3]
    if not apikey or not device_id:
        return None
    if kind == "attrs" and len(levels) == 4:
        return apikey, device_id, "attrs", None, fmt
    if kind == "attrs" and len(levels) == 5 and levels[4]:
        return apikey, device_id, "attr", levels[4], fmt
    if kind == "cmdexe" and len(levels) == 4:
        return apikey, device_id, "cmdexe", None, fmt
    return None


def parse_url(url: str) -> tuple[str, int, str | None, str | None]:
    """(host, port, username, password) of ``mqtt://[user:password@]host[:port]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
        raise ValueError(f"MQTT broker URL {url!r} must look like mqtt://host:1883")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, parts.port or 1883, user, password


class MqttTransport:
    """A persistent MQTT session that feeds device messages to ``submit``."""

    def __init__(
        self,
        url: str,
        client_id: str,
        submit: Callable[[Message], None],
        stats: Stats,
        *,
        subscribe: bool = True,
        backlog: Callable[[], int] = lambda: 0,
    ) -> None:
        self.host, self.port, user, password = parse_url(url)
        self.client_id = client_id
        self.subscribe = subscribe
        self.stats = stats
        self._submit = submit
        self._backlog = backlog
        self.connected = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=not subscribe,
            protocol=paho.MQTTv311,
        )
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        # paho looks every message up among per-topic callbacks, which the agent never
        # registers, with a recursive closure: six objects in a reference cycle per
        # message, which only the garbage collector's pauses free.
        self.client._on_message_filtered = _TopicCallbacks()

    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect (the session stays with the broker) and end the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    def publish(self, topic: str, payload: bytes) -> bool:
        """Publish with QoS 1; while disconnected paho keeps it and sends it on reconnection."""
        info = self.client.publish(topic, payload, qos=1)
        return info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN)

    # -- callbacks, in paho's network thread ----------------------------------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason: object,
        properties: object,
    ) -> None:
        if getattr(reason, "is_failure", False):
            log.error("MQTT broker %s:%d refused the connection: %s", self.host, self.port, reason)
            return
        log.info(
            "MQTT connected to %s:%d as %r (session %s)",
            self.host,
            self.port,
            self.client_id,
            "resumed" if flags.session_present else "new",
        )
        self.stats.count("mqttConnections")
        if self.subscribe:
            client.subscribe([(topic, 1) for topic in TOPICS])
        self.connected.set()

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: object,
        reason: object,
        properties: object,
    ) -> None:
        self.connected.clear()
        if getattr(reason, "is_failure", False):
            log.warning(
                "MQTT connection to %s:%d lost (%s); reconnecting", self.host, self.port, reason
            )

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            self.stats.reject("bad-topic", "the topic is not UTF-8", transport="mqtt")
            return
        parsed = parse_topic(topic)
        if parsed is None:
            self.stats.reject("bad-topic", f"topic {topic[:120]!r}", transport="mqtt")
            return
        apikey, device_id, kind, attr, fmt = parsed
        # Backpressure: the message is acknowledged when this returns.
        while self._backlog() > MAX_BACKLOG and self.connected.is_set():
            time.sleep(0.002)
        self._submit(
            Message(
                "mqtt", apikey, device_id, kind, bytes(msg.payload), attr, fmt, dup=bool(msg.dup)
            )
        )
