"""Thin nipype interfaces; the computations are pure functions beside them."""

import os as _os

# nipype checks for updates over the network when imported unless told not to; the app never
# touches the network at run time.
_os.environ.setdefault("NIPYPE_NO_ET", "1")
