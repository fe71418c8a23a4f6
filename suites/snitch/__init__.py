"""SnitchBench-style suite: whether and when a model contacts the government or the media."""
