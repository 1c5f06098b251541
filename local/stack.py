"""The whole of Voiceline on one machine: moto, the gateway, the bridge, the scripted model and Twilio's REST API.

Each piece runs in its own process on 127.0.0.1, as it would run apart in AWS. `make dev` runs
this module in the foreground; tests and the demo use `LocalStack` as a context manager.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import httpx

from local.environment import (
    BRIDGE_PORT,
    DYNAMODB_PORT,
    GATEWAY_PORT,
    MODEL_PORT,
    TEXT_MODEL_PORT,
    TWILIO_REST_PORT,
    local_environment,
)
from local.scripted_model.conversation import Script, load_script

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONVERSATION = ROOT / "local" / "conversations" / "demo.json"
READY_TIMEOUT_S = 30.0


def free_ports(count: int) -> list[int]:
    """`count` distinct ports nobody is using now. Each probe stays bound until all are chosen: probed one at a
    time, the same port came back twice, and a stack's bridge then lost its port to another of its servers."""
    with contextlib.ExitStack() as probes:
        ports = []
        for _ in range(count):
            probe = probes.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
        return ports


def free_port() -> int:
    return free_ports(1)[0]


@dataclass(frozen=True)
class StackPorts:
    dynamodb: int = DYNAMODB_PORT
    gateway: int = GATEWAY_PORT
    bridge: int = BRIDGE_PORT
    model: int = MODEL_PORT
    twilio_rest: int = TWILIO_REST_PORT
    text_model: int = TEXT_MODEL_PORT

    @classmethod
    def free(cls) -> StackPorts:
        """Ports nobody is using, so tests can run beside a `make dev`."""
        return cls(*free_ports(len(fields(cls))))


@dataclass
class LocalStack:
    ports: StackPorts = field(default_factory=StackPorts)
    conversation: Path = DEMO_CONVERSATION
    log_dir: Path = ROOT / "out" / "logs"
    extra_env: dict[str, str] = field(default_factory=dict)
    bridge_module: str = "bridge"  # what serves the bridge's port: the load bench's floor swaps in a bare relay
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # The conversation as the scripted model loaded it: its dates stay those of the stack's start, past midnight too
    script: Script | None = None

    @property
    def uses_scripted_model(self) -> bool:
        """The scripted model stands in for OpenAI whenever no OPENAI_API_KEY is set."""
        return not os.environ.get("OPENAI_API_KEY")

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    @property
    def bridge_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.bridge}"

    @property
    def model_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.model}"

    @property
    def text_model_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.text_model}"

    @property
    def dynamodb_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.dynamodb}"

    @property
    def twilio_api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.twilio_rest}"

    def environment(self) -> dict[str, str]:
        overrides = {
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_url,
            # The gateway serves Lambda's Invoke API too, as `sam local start-lambda` would.
            "AWS_ENDPOINT_URL_LAMBDA": self.gateway_url,
            "TWILIO_API_BASE_URL": self.twilio_api_url,
            "BRIDGE_PUBLIC_URL": f"ws://127.0.0.1:{self.ports.bridge}",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        if self.uses_scripted_model:
            overrides["OPENAI_REALTIME_URL"] = f"ws://127.0.0.1:{self.ports.model}/v1/realtime"
            overrides["OPENAI_API_KEY"] = "local-scripted-model"
            overrides["OPENAI_API_BASE"] = self.text_model_url  # post-call summaries: local/scripted_text_model.py
        return local_environment({**overrides, **self.extra_env})

    def start(self) -> LocalStack:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        python = sys.executable
        try:
            self._spawn("dynamodb", [python, "-m", "local.moto_server", "-H", "127.0.0.1",
                                     "-p", str(self.ports.dynamodb)])
            self._wait_ready("dynamodb", f"{self.dynamodb_url}/moto-api/")
            subprocess.run([python, "-m", "local.seed"], env=self.environment(), check=True, cwd=ROOT,
                           capture_output=True, timeout=60)
            if self.uses_scripted_model:
                self.script = load_script(self.conversation)
                self._spawn("model", [python, "-m", "local.scripted_model", "--host", "127.0.0.1",
                                      "--port", str(self.ports.model), "--conversation", str(self.conversation),
                                      "--today", self.script.day.isoformat()])
                self._spawn("text_model", [python, "-m", "local.scripted_text_model", "--port",
                                           str(self.ports.text_model)])
            self._spawn("gateway", [python, "-m", "local.gateway", "--port", str(self.ports.gateway)])
            self._spawn("twilio_rest", [python, "-m", "local.twilio_rest", "--port", str(self.ports.twilio_rest)])
            self._spawn("bridge", [python, "-m", self.bridge_module, "--host", "127.0.0.1",
                                   "--port", str(self.ports.bridge)])
            if self.uses_scripted_model:
                self._wait_ready("model", f"{self.model_url}/health")
                self._wait_ready("text_model", f"{self.text_model_url}/health")
            self._wait_ready("bridge", f"{self.bridge_url}/health")
            self._wait_listening("gateway", self.ports.gateway)
            self._wait_listening("twilio_rest", self.ports.twilio_rest)
            # Lambda's DynamoDB stream event sources, invoking through the gateway once it listens.
            self._spawn("stream_poller", [python, "-m", "local.stream_poller"])
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop in reverse order of start, so the bridge can still flush to DynamoDB as it goes."""
        for name, process in reversed(self._processes.items()):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop on SIGTERM; killing it", file=sys.stderr)
                process.kill()
                process.wait(timeout=5)
        self._processes.clear()

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}-{self.ports.bridge}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self, name: str, command: list[str]) -> None:
        log = (self.log_dir / f"{name}-{self.ports.bridge}.log").open("wb")
        self._processes[name] = subprocess.Popen(command, cwd=ROOT, env=self.environment(),
                                                 stdout=log, stderr=subprocess.STDOUT)

    def _check_alive(self, name: str) -> None:
        if self._processes[name].poll() is not None:
            raise RuntimeError(f"{name} exited during start-up:\n{self.log(name)[-3000:]}")

    def _wait_ready(self, name: str, url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive(name)
            try:
                if httpx.get(url, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # start-up probe: nothing to wait on but the port itself
        raise TimeoutError(f"{name} not ready at {url} after {READY_TIMEOUT_S}s:\n{self.log(name)[-3000:]}")

    def _wait_listening(self, name: str, port: int) -> None:
        wait_listening(self._processes[name], port, name, lambda: self.log(name)[-3000:])


def wait_listening(process: subprocess.Popen[bytes], port: int, name: str,
                   log: Callable[[], str] = lambda: "") -> None:
    """Until `process` accepts connections on `port`; fails at once, with its log, should it exit first."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited during start-up:\n{log()}")
        with socket.socket() as probe:
            probe.settimeout(1.0)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # start-up probe: nothing to wait on but the port itself
    raise TimeoutError(f"{name} not listening on {port} after {READY_TIMEOUT_S}s:\n{log()}")


def main() -> None:
    """`make dev`: run the stack in the foreground for manual calls until Ctrl-C."""
    with LocalStack() as stack:
        model = stack.model_url if stack.uses_scripted_model else "OpenAI (OPENAI_API_KEY is set)"
        print(f"gateway  {stack.gateway_url}  (POST /twilio/voice, /twilio/status)")
        print(f"bridge   {stack.bridge_url}  (WS /media-stream, GET /health, GET /calls)")
        print(f"admin    {stack.gateway_url}/api/docs  (API keys: make admin-key TENANT=tenant-demo)")
        print(f"dashboard {stack.gateway_url}/api/dashboard  (enter an admin API key)")
        print(f"model    {model}")
        print(f"dynamodb {stack.dynamodb_url}  (moto; table streams feed the template's DynamoDB event functions)")
        print(f"twilio   {stack.twilio_api_url}  (Twilio REST stand-in: numbers, outbound calls, hang-up, transfer)")
        print(f"logs     {stack.log_dir}")
        print("place a call: python -m local.call_simulator --gateway", stack.gateway_url,
              "--twilio-api", stack.twilio_api_url, "--to +15550100")
        stop_signals = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
        signal.sigwait(stop_signals)


if __name__ == "__main__":
    main()
