/**
 * A static export: `next build` writes plain files to out/, which the gateway serves at /.
 * trailingSlash gives every page its own directory (/sql/ -> sql/index.html), so a deep link
 * reloads without any server-side routing; ids travel in query parameters (?name=, ?id=).
 */
const nextConfig = {
  output: "export",
  trailingSlash: true,
  images: { unoptimized: true },
  reactStrictMode: true,
  poweredByHeader: false,
  productionBrowserSourceMaps: false,
};

export default nextConfig;
