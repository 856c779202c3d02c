"""Batch helper for tests/ansible_vault_interop.rs: runs ansible's own vault code
(ansible.parsing.vault, the code behind the `ansible-vault` CLI) over a directory of files in
one Python process, because starting `ansible-vault` per file costs ~0.5 s.

usage: python ansible_vault_helper.py MODE DIR PASSWORD_FILE
  decrypt: every NAME.vault -> NAME.out (plaintext) or NAME.err (the error message)
  encrypt: every NAME.plain -> NAME.vault; names starting with "l_" get vault-id label "lbl"
           (format 1.2), the others format 1.1
  verify:  every NAME.vault -> NAME.err with the message of ansible's AES256 decrypt
           (no secret matching by vault-id), or NAME.out if it decrypts
"""
import os
import sys

from ansible.parsing.vault import (
    VaultAES256,
    VaultLib,
    VaultSecret,
    parse_vaulttext_envelope,
)

mode, directory, password_file = sys.argv[1:4]
with open(password_file, "rb") as f:
    secret = VaultSecret(f.read().strip())
vault = VaultLib([("default", secret), ("lbl", secret)])


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


for name in sorted(os.listdir(directory)):
    path = os.path.join(directory, name)
    stem, ext = os.path.splitext(name)
    base = os.path.join(directory, stem)
    with open(path, "rb") as f:
        data = f.read()
    if mode == "decrypt" and ext == ".vault":
        try:
            write(base + ".out", vault.decrypt(data))
        except Exception as e:  # the test reads the message
            write(base + ".err", str(e).encode())
    elif mode == "verify" and ext == ".vault":
        try:
            body, _version, _cipher, _vault_id = parse_vaulttext_envelope(data)
            write(base + ".out", VaultAES256.decrypt(body, secret))
        except Exception as e:
            write(base + ".err", str(e).encode())
    elif mode == "encrypt" and ext == ".plain":
        vault_id = "lbl" if stem.startswith("l_") else None
        write(base + ".vault", vault.encrypt(data, secret=secret, vault_id=vault_id))
