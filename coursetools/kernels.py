"""Kernel settings for every Jupyter kernel the course starts: the student's JupyterLab (coursetools.workspace),
the tests and the benchmarks that execute notebooks."""
from __future__ import annotations

import os


def kernel_manager_config() -> dict:
    """Kernel settings for every kernel the course starts (JupyterLab, tests, benchmarks), as a config dict.

    ipykernel warns "Kernel is running over TCP without encryption" unless its kernel manager gives it
    CurveZMQ keys; jupyter_client does so with ``transport_encryption = "auto"`` when the kernelspec
    declares support (ipykernel's does). Without CurveZMQ in pyzmq, local IPC sockets avoid TCP altogether.
    """
    try:
        import zmq
        from jupyter_client.manager import KernelManager
    except ImportError:
        return {}
    if zmq.has("curve") and "transport_encryption" in KernelManager.class_trait_names():
        return {"KernelManager": {"transport_encryption": "auto"}}
    return {"KernelManager": {"transport": "ipc"}} if os.name == "posix" else {}
