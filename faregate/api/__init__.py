"""Client and admin HTTP routes: parse the wire format, call the pipeline, render the reply."""
