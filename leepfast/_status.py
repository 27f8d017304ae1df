"""Status codes shared by every backend (mirrors ``enum leepfast_status`` in leepfast.h)."""

OK = 0
ERR_NULL = 1
ERR_SIZE = 2
ERR_LABEL = 3
ERR_NONFINITE = 4
ERR_NEGATIVE = 5
ERR_NOT_NORMALISED = 6
ERR_ZERO_PROB = 7
ERR_NOMEM = 8
