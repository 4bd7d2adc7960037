"""JSON Schema handling: a record's schema from draft to validation.

- ``sanitize``: clean up a drafted schema (the usual mistakes of a model that drafts one);
- ``check``: refuse what we will not run, with field-level errors (meta-schema, size,
  depth, references, costly regular expressions); a schema's field order;
- ``validate``: validate records against a checked schema, once compiled per job
  (``bounded``: the validator class whose regex matches on record data are bounded).
"""
