"""Pruning: head and feed-forward importance, physical removal, recovery, vocabulary trimming."""
