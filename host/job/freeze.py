"""Imported by the fork server last, after everything it preloads: collect once, then `gc.freeze()`.

Frozen objects are never visited by the cyclic garbage collector in the job processes it forks, so the
collector does not write to (and so copy) the pages they share with the fork server.
"""

import gc

gc.collect()
gc.freeze()
