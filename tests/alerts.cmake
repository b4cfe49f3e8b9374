# Alerts and observability: notify (policy, formatting, SMTP, Telegram),
# metrics and progress. Label `alerts`; the tests without I/O beyond local
# files and in-process/stand-in servers also carry `unit`.
set(_d ${CMAKE_CURRENT_SOURCE_DIR})
mbq_add_test(NAME notify_format SOURCES ${_d}/test_notify_format.c LABELS alerts unit)
mbq_add_test(NAME notify_progress SOURCES ${_d}/test_notify_progress.c LABELS alerts unit)
mbq_add_test(NAME metrics SOURCES ${_d}/test_metrics.c LABELS alerts unit)
# Scripted in-process SMTP server; ~4 s (the default 1 s + 2 s backoff is timed).
mbq_add_test(NAME notify_smtp_fake SOURCES ${_d}/test_notify_smtp_fake.c LABELS alerts TIMEOUT 60)
# Starts tests/standins/telegram_standin.py itself (python3 stdlib).
mbq_add_test(NAME notify_telegram SOURCES ${_d}/test_notify_telegram.c LABELS alerts TIMEOUT 60)
# The harness's real SMTP server (tools/services.sh).
mbq_add_test(NAME notify_smtp SOURCES ${_d}/test_notify_smtp.c LABELS alerts SERVICES TIMEOUT 120)
