"""KubeSpawner configured from sde's own pod spec, so a deployment's workspaces carry the
same guarantees as :func:`sde.domain.workspaces.build_pod`.

The settings are derived from the pod sde builds (not written twice): image, user and
group, the pod's and the container's security contexts, the volumes and mounts (the
extract read-only), resources (ephemeral storage included), node selector, tolerations,
labels, the environment and the pod-level switches (no service links, no host
namespaces, never restarted, no service-account token). KubeSpawner then adds what only
JupyterHub knows (the hub's API token and URLs).

With the lake on object storage (``extract``, a :class:`~sde.domain.workspaces.StoreExtract`)
the pod mounts no extract volume; ``SDE_EXTRACT`` is the extract's URL and the store's
plain options are plain variables. The credentials, with a per-project Secret, go into
KubeSpawner's ``environment`` as EnvVar specs (``{"valueFrom": {"secretKeyRef": ...}}``),
which KubeSpawner supports for exactly this: its ``get_env`` passes dict values through
and ``make_pod`` turns them into ``V1EnvVar(value_from=...)``, so the manifest carries a
reference to the Secret, never the value. ``tests/integration/
test_kubespawner_manifest.py`` builds KubeSpawner's manifest offline and checks it
against the Kubernetes schemas and the restricted profile.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from sde.domain.workspaces import PodSettings, StoreExtract, build_pod, parse_quantity


def _environment(env: list[dict[str, Any]]) -> dict[str, Any]:
    """The container's env as KubeSpawner's ``environment``: a text value, or an EnvVar
    spec (``{"valueFrom": ...}``) for a variable taken from a Secret."""
    out: dict[str, Any] = {}
    for entry in env:
        if "value" in entry:
            out[entry["name"]] = entry["value"]
        else:
            out[entry["name"]] = {"valueFrom": copy.deepcopy(entry["valueFrom"])}
    return out


def kubespawner_settings(
    settings: PodSettings,
    *,
    project_id: str,
    person_id: str,
    env: Mapping[str, str] | None = None,
    extract: StoreExtract | None = None,
) -> dict[str, Any]:
    """``c.KubeSpawner.<trait>`` values for one person's workspace on one project;
    ``extract`` as for :func:`~sde.domain.workspaces.build_pod` (None: a local lake, the
    extract volume)."""
    pod = build_pod(
        settings,
        project_id=project_id,
        person_id=person_id,
        session_name="kubespawner",
        env=dict(env or {}),
        extract=extract,
    )
    spec = pod["spec"]
    [container] = spec["containers"]
    requests = container["resources"]["requests"]
    limits = container["resources"]["limits"]
    labels = {k: v for k, v in pod["metadata"]["labels"].items() if not k.endswith("/session")}
    return {
        "namespace": settings.namespace,
        "image": container["image"],
        "image_pull_policy": "IfNotPresent",
        "uid": settings.uid,
        "gid": settings.gid,
        "fs_gid": settings.gid,
        "allow_privilege_escalation": False,
        "container_security_context": dict(container["securityContext"]),
        "pod_security_context": dict(spec["securityContext"]),
        "automount_service_account_token": False,
        "service_account": spec["serviceAccountName"],
        "volumes": list(spec["volumes"]),
        "volume_mounts": list(container["volumeMounts"]),
        "working_dir": container["workingDir"],
        "cpu_guarantee": float(parse_quantity(requests["cpu"])),
        "cpu_limit": float(parse_quantity(limits["cpu"])),
        "mem_guarantee": int(parse_quantity(requests["memory"])),
        "mem_limit": int(parse_quantity(limits["memory"])),
        "extra_resource_guarantees": {"ephemeral-storage": requests["ephemeral-storage"]},
        "extra_resource_limits": {"ephemeral-storage": limits["ephemeral-storage"]},
        "node_selector": dict(spec.get("nodeSelector", {})),
        "tolerations": list(spec.get("tolerations", [])),
        "extra_labels": labels,
        "extra_annotations": dict(pod["metadata"]["annotations"]),
        "environment": _environment(container["env"]),
        "port": settings.notebook_port,
        "extra_pod_config": {
            "enableServiceLinks": False,
            "hostNetwork": False,
            "hostPID": False,
            "hostIPC": False,
            "restartPolicy": "Never",
        },
        "storage_pvc_ensure": False,
    }


def configure_kubespawner(
    spawner: Any,
    settings: PodSettings,
    *,
    project_id: str,
    person_id: str,
    env: Mapping[str, str] | None = None,
    extract: StoreExtract | None = None,
) -> None:
    """Set a KubeSpawner's traits for one person's workspace on one project."""
    for name, value in kubespawner_settings(
        settings, project_id=project_id, person_id=person_id, env=env, extract=extract
    ).items():
        setattr(spawner, name, value)
