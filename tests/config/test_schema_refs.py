"""Where a metadata schema's `$ref`s may be read from: the agent file's folder and the working directory, never
elsewhere, and never over the network."""

from __future__ import annotations

import pytest
from referencing.exceptions import NoSuchResource

from host.config.schema_refs import inside, retriever, schema_roots, walk_refs, with_base


def test_refs_are_read_only_from_inside_the_roots(tmp_path, monkeypatch):
    agents, elsewhere = tmp_path / "agents", tmp_path / "elsewhere"
    agents.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(agents)
    (agents / "common.yaml").write_text("type: object\n")
    (elsewhere / "secret.yaml").write_text("type: string\n")
    (agents / "link.yaml").symlink_to(elsewhere / "secret.yaml")
    roots = schema_roots(str(agents))
    retrieve = retriever(roots)
    assert retrieve((agents / "common.yaml").as_uri()).contents == {"type": "object"}
    for uri in ((elsewhere / "secret.yaml").as_uri(), (agents / "link.yaml").as_uri(),
                "https://example.com/schema.json"):
        with pytest.raises(NoSuchResource):
            retrieve(uri)
    assert inside(str(agents / "sub" / "x.yaml"), roots) and not inside(str(elsewhere), roots)


def test_a_schema_gets_its_files_base_and_its_refs_are_found_where_they_are():
    schema = {"properties": {"a": {"$ref": "common.yaml"}, "b": {"items": [{"$ref": "#/$defs/x"}]}}}
    assert list(walk_refs(schema)) == [(("properties", "a", "$ref"), "common.yaml"),
                                       (("properties", "b", "items", 0, "$ref"), "#/$defs/x")]
    assert with_base(schema, "/srv/agents/a.yaml")["$id"] == "file:///srv/agents/a.yaml"
    assert with_base({"$id": "urn:x"}, "/srv/agents/a.yaml") == {"$id": "urn:x"}
