# SPDX-License-Identifier: Apache-2.0
"""The SRE command line: ``wio status``, ``inspect``, ``renew``, ``revoke`` and ``verify``.

Entry layer, beside ``wio.cli`` (which only parses arguments and prints): these commands run
with the SRE's own kubeconfig and RBAC, talk to the API through ``wio.k8s`` only, and decode
and verify with the pure ``wio.issuing`` and ``wio.models`` code, the same the operator uses.

- ``objects``: ``NAMESPACE/NAME`` references and finding the object they name;
- ``status``: one row per credential, its health (an ordered chain of named checks), sorting;
- ``inspect``: what a credential Secret holds, as metadata only;
- ``requests``: forced rotation and revoke-without-delete through the annotations, acknowledged;
- ``verify``: an SVID or JWT checked against a namespace's published bundle and revocations;
- ``render``: tables, JSON and YAML (pure).

Nothing here prints or returns key material, a certificate body or a token.
"""
