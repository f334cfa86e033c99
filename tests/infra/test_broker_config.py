"""Pure helpers of infra.broker: server.properties, ports, the java command (no JVM, no network)."""

from __future__ import annotations

import socket
from pathlib import Path

from cryptolake.settings import KafkaSettings, Settings
from infra import broker


def test_server_properties_declare_single_node_kraft_without_auto_create(tmp_path):
    text = broker.render_server_properties(9092, 9093, tmp_path / "data", partitions=3)
    props = broker.parse_properties(text)
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["auto.create.topics.enable"] == "false"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["num.partitions"] == "3"


def test_parse_properties_ignores_comments_and_blanks():
    assert broker.parse_properties("# c\n\na=b=c\n x = y \n") == {"a": "b=c", "x": "y"}


def test_free_port_is_bindable_and_busy_port_is_not_free():
    port = broker.free_port()
    assert broker.port_is_free(port)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert not broker.port_is_free(busy)
        # a busy previous port is not reused; a fresh free one is chosen instead
        chosen = broker.choose_port(0, busy)
        assert chosen != busy and broker.port_is_free(chosen)


def test_choose_port_prefers_configured_then_previous():
    assert broker.choose_port(19092, 5555) == 19092
    prev = broker.free_port()
    assert broker.choose_port(0, prev) == prev
    assert broker.choose_port(0, prev, avoid=prev) != prev


def test_java_command_uses_heap_log4j2_and_kafka_jars():
    settings = Settings().model_copy(update={"kafka": KafkaSettings(heap="384m")})
    cmd = broker.java_command(settings, broker.KAFKA_MAIN, "server.properties")
    assert "-Xmx384m" in cmd and "-Xms384m" in cmd
    assert cmd[-2:] == ["kafka.Kafka", "server.properties"]
    classpath = cmd[cmd.index("-cp") + 1].split(":")
    assert any(Path(p).name.startswith("kafka_2.13-") for p in classpath)
    assert any(a.startswith("-Dlog4j2.configurationFile=") for a in cmd)


def test_status_is_none_without_state_file(tmp_path):
    settings = Settings().model_copy(update={"paths": Settings().paths.model_copy(update={"state_dir": tmp_path})})
    assert broker.status(settings) is None
    assert broker.stop(settings) is False


def test_status_is_none_for_a_dead_pid(tmp_path):
    settings = Settings().model_copy(update={"paths": Settings().paths.model_copy(update={"state_dir": tmp_path})})
    state = tmp_path / "kafka" / "broker.json"
    assert broker.kafka_dir(settings) == settings.paths.kafka_dir == state.parent  # one definition of the folder
    state.parent.mkdir(parents=True)
    state.write_text('{"bootstrap": "127.0.0.1:1", "pid": 999999999, "port": 1, "controller_port": 2}')
    assert broker.status(settings) is None
