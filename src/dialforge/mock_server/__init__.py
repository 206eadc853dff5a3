"""An OpenAI-compatible chat server with latency and fault injection, for testing clients offline.

Run it with ``dialforge mock-server``; in tests, ``start_mock_server`` serves it in the test's event loop.
"""

from dialforge.mock_server.app import MockServerSettings, build_app, serve, start_mock_server
from dialforge.mock_server.faults import Fault

__all__ = ["Fault", "MockServerSettings", "build_app", "serve", "start_mock_server"]
