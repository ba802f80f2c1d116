"""The core: parse requests, check them, commit messages, fan events out to members."""
