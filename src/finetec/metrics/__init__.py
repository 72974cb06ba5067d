"""Metrics: restoration error on missing frames (:mod:`.restoration`) and recognition accuracy
(:mod:`.classification`)."""
