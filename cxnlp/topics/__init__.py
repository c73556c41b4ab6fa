"""Pain-point topics: the taxonomy file (`taxonomy`) and the topic head that tags texts with topics
and their polarity, custom topics included (`tagger`)."""
