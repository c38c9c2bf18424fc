#!/bin/sh
echo "hello from layerfold: $(cat /opt/hello/share/message.txt)"
