"""Jobs behind the entry scripts: train, tune, segment, report (each composes the layers below it)."""
