"""The routing rules: the file's parser, the installed versions in force, and the 振り分けルール page's reading of them."""
