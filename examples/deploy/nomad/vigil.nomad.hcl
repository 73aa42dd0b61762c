# A Nomad job running the image with Vigil as PID 1, registered in Consul
# with checks on Vigil's own endpoints: HTTP /readyz for the whole group,
# gRPC health for one service (`vigil run --grpc`), and a script check
# running the wasm check once (`vigil check`, exit 0 ok, 1 critical).
job "web" {
  datacenters = ["dc1"]
  type        = "service"

  group "web" {
    count = 2

    network {
      port "app" { to = 8080 }
      port "vigil" { to = 9100 }
      port "grpc" { to = 9101 }
    }

    task "web" {
      driver = "docker"

      config {
        image = "registry.example/web-with-vigil:1.0"
        ports = ["app", "vigil", "grpc"]
        args = [
          "run", "--checks", "/etc/vigil", "--state-dir", "/var/lib/vigil",
          "--http", "0.0.0.0:9100", "--grpc", "0.0.0.0:9101", "--quiet",
        ]
      }

      # SIGTERM is Vigil's graceful shutdown; give it the services' stop-grace.
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      service {
        name     = "web"
        port     = "app"
        provider = "consul"

        check {
          name     = "vigil-readyz"
          type     = "http"
          port     = "vigil"
          path     = "/readyz"
          interval = "5s"
          timeout  = "2s"
        }

        check {
          name         = "vigil-grpc-web"
          type         = "grpc"
          port         = "grpc"
          grpc_service = "web"
          interval     = "10s"
          timeout      = "2s"
        }

        check {
          name     = "vigil-check-http"
          type     = "script"
          task     = "web"
          command  = "/usr/local/bin/vigil"
          args     = ["check", "builtin:http", "--config", "url=http://127.0.0.1:8080/",
                      "--allow-host", "http://127.0.0.1:8080", "--timeout", "2s"]
          interval = "10s"
          timeout  = "3s"
        }
      }

      service {
        name     = "web-vigil-metrics"
        port     = "vigil"
        provider = "consul"
        tags     = ["prometheus"]

        check {
          name     = "vigil-livez"
          type     = "http"
          path     = "/livez"
          interval = "10s"
          timeout  = "2s"
        }
      }

      resources {
        cpu    = 500
        memory = 256
      }
    }
  }
}
