"""The `docket` command line: an entry point beside api/ and worker/."""
