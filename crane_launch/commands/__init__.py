"""crane's commands, one module per group, as the CLI calls them.

- `index`: `crane index register | list | remove`
- `session`: `crane login | logout | status`
- `tools`: `crane pip | uv | poetry | serve`

Each function takes what the user typed (already parsed by `cli`) and returns what the
CLI prints or the exit code; the decisions live here and below, never in `cli`.
"""
