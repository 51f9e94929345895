"""MQTT: readings from a broker's topics into the streams, alarms published back (docs/mqtt.md).

`topics` maps topics to streams, `payload` reads the forms gateways publish, `connection` is
the broker session (paho-mqtt, manual acknowledgement), `bridge` feeds the ingest pipeline and
publishes alarm events, `metrics` the `tad_mqtt_*` series.
"""
