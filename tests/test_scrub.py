"""The %nats_connect secret finder on plain text (no shell): exactly the secret characters
go, whatever the line's other words are and whether or not it parses."""

from __future__ import annotations

import pytest

from natsbook.notebook._scrub import scrub_cell

SEED = "SUAM" + "K" * 54


@pytest.mark.parametrize(("cell", "want"), [
    ("%nats_connect nats://h:1 --token s3cr3t", "%nats_connect nats://h:1 --token ***"),
    ("%nats_connect nats://s3cr3t@h:1 --timeout 3", "%nats_connect nats://***@h:1 --timeout 3"),
    ("%nats_connect nats://u:p@ss@h:1", "%nats_connect nats://u:***@h:1"),
    ("%nats_connect 'tls://u:p w@h:1' --user u3", "%nats_connect 'tls://u:***@h:1' --user u3"),
    ("%nats_connect tok@h:1", "%nats_connect ***@h:1"),
    ("%nats_connect --token T3 --name", "%nats_connect --token *** --name"),
    ("%nats_connect --token --name n3", "%nats_connect --token --name n3"),
    ("%nats_connect --tok=s3 --password='a b' --name n3",
     "%nats_connect --tok=*** --password=*** --name n3"),
    ("%nats_connect --tokn s3 --pasword p3 --timeout 3",
     "%nats_connect --tokn *** --pasword *** --timeout 3"),
    ("%nats_connect --token -dash", "%nats_connect --token ***"),
    ("%nats_connect --token 'unbalanced 3", "%nats_connect --token ***"),
    ("%nats_connect --token {tok} --password $pw --token={t}",
     "%nats_connect --token {tok} --password $pw --token={t}"),
    (f"%nats_connect --nkey {SEED} --creds ~/u.creds",
     "%nats_connect --nkey *** --creds ~/u.creds"),
    (f"%nats_connect --nkey ~/u.nk --name n {SEED}", "%nats_connect --nkey ~/u.nk --name n ***"),
    ("x = 3\nc = %nats_connect nats://h --password 3\ny = '3'",
     "x = 3\nc = %nats_connect nats://h --password ***\ny = '3'"),
    ("nats_connect --password 3", "nats_connect --password ***"),  # automagic
    ("print('--token 3')", "print('--token 3')"),  # not a %nats_connect line
])
def test_scrub_cell(cell: str, want: str) -> None:
    assert scrub_cell(cell) == want
