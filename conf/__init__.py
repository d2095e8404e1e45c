# Installed as the package `reslab.conf` (see pyproject.toml), so the `reslab` command finds its config anywhere.
