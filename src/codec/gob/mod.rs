//! Go `encoding/gob`: a self-describing decoder into a dynamic value and an encoder for replies.
