"""A throwaway single-node Kafka broker for benchmarks, so load never lands in shared topics.

The platform's broker (`127.0.0.1:9092`) feeds the Spark landing job, which re-reads its topics
from the beginning for a new checkpoint: millions of benchmark records there would end up in
other people's bronze tables. This starts a second KRaft broker from the same jars, `java` and
settings as `dataplatform up` renders (one node, `min.insync.replicas=1`, 3 partitions), in a
temporary directory on its own loopback ports, creates the platform's topics on it, and removes
everything on exit. Point a client at it with `KAFKA_BOOTSTRAP_SERVERS`.

    with private_broker(port=19092) as bootstrap:
        ...
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dataplatform.clients.kafka import ensure_topics
from dataplatform.settings import KafkaSettings, get_runtime_settings

_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dirs}
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
auto.create.topics.enable=false
num.partitions={partitions}
group.initial.rebalance.delay.ms=0
log.segment.bytes=268435456
num.network.threads=2
num.io.threads=4
"""

_LOG4J = """\
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
"""


def _java(conf: Path, main: str, *args: str) -> list[str]:
    runtime = get_runtime_settings()
    return [
        str(runtime.java_bin()),
        "-Xms256m",
        "-Xmx1g",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={conf / 'log4j2.properties'}",
        "-cp",
        str(runtime.jars_dir / "kafka" / "*"),
        main,
        *args,
    ]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def private_broker(
    *, port: int = 19092, partitions: int = 3, start_timeout_s: float = 90.0
) -> Iterator[str]:
    """Run a throwaway broker on `127.0.0.1:port` (controller on `port + 1`).

    Yields:
        Its bootstrap address, with the platform's topics created.

    Raises:
        RuntimeError: A port is taken, formatting failed or the broker did not come up.
    """
    if _port_open(port) or _port_open(port + 1):
        raise RuntimeError(f"port {port} or {port + 1} is in use: pick another with --kafka-port")
    root = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        conf = root / "conf"
        conf.mkdir()
        (conf / "server.properties").write_text(
            _SERVER_PROPERTIES.format(
                port=port, controller=port + 1, log_dirs=root / "data", partitions=partitions
            )
        )
        (conf / "log4j2.properties").write_text(_LOG4J)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        subprocess.run(
            _java(
                conf,
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(conf / "server.properties"),
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        log = (root / "broker.log").open("wb")
        proc = subprocess.Popen(
            _java(conf, "kafka.Kafka", str(conf / "server.properties")),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + start_timeout_s
        while not _port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private Kafka broker did not start; see {root / 'broker.log'}")
            time.sleep(0.5)
        bootstrap = f"127.0.0.1:{port}"
        ensure_topics(KafkaSettings(bootstrap_servers=bootstrap, partitions=partitions))
        yield bootstrap
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
